"""Ingest settings: ``ZHIJIAN_`` environment variables, an optional ``.env``-style file, or arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    """Where the ingest reads from and writes to. ``ZHIJIAN_MQTT_HOST=broker zhijian ingest run``."""

    model_config = SettingsConfigDict(env_prefix="ZHIJIAN_", env_file=None, extra="ignore")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, gt=0, lt=65536)
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_client_id: str = Field(
        "",
        description="stable per worker: it names the persistent session; default: the username (a Zhijian broker "
        "sets every client id to its username), else zhijian-ingest-1",
    )
    share_group: str = Field("", description="MQTT 5 shared-subscription group; empty: partitioned plain subscription")
    partition: int = Field(0, ge=0, description="this worker's partition, 0 … partitions-1")
    partitions: int = Field(1, ge=1, description="number of ingest workers sharing the devices")
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        "5",
        description="MQTT version of the ingest's own connection (devices choose theirs); 3.1.1 sessions never "
        "expire on their own and cannot use share_group",
    )
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="how long the broker keeps our queue")
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "zhijian"
    influx_username: str | None = None
    influx_password: str | None = None
    devices_file: Path = Path("devices.json")
    registry_url: str | None = Field(
        None, description="read devices from this registry database (instead of devices_file), kept current"
    )
    devices_snapshot: bool = Field(
        True, description="keep a snapshot of the devices beside the state, for a fast start (see Large fleets)"
    )
    devices_snapshot_path: Path = Field(
        Path("devices_snapshot.npz"), description="`zhijian ingest run` puts it beside the spool"
    )
    registry_refresh_s: float = Field(10.0, gt=0, description="how often to look for registry changes")
    # Cases (docs/cases.md): alert, flag and base-acknowledgement events go to the registry API's cases
    registry_api_url: str | None = Field(
        None, description="the registry API (https://…): report alerts, flags and base acks to its cases"
    )
    registry_api_token: SecretStr | None = Field(None, description="an API token of role ingest for registry_api_url")
    case_outbox_max_events: int = Field(
        100_000, ge=1, description="case events kept while the registry is away; more are counted, not kept"
    )
    case_counts_interval_s: float = Field(
        30.0, gt=0, description="how often the `case` series (open cases by district, market, state) is written"
    )
    status_period_s: float = Field(
        60.0, ge=0, description="how often scale_status and place points are written, changes only (0: never)"
    )
    online_window_s: float = Field(600.0, gt=0, description="a scale is online if it sent within this many seconds")
    unknown_device_grace_s: float = Field(
        600.0, ge=0, description="how long messages of a device not in the registry yet are held, not dead-lettered"
    )
    state_path: Path = Field(
        Path("ingest_state.sqlite"),
        description="sequences, alerts, dead letters and the anti-cheat checkpoint: one SQLite file, one "
        "transaction per batch (files of an earlier version beside it are imported once)",
    )
    spool_path: Path = Path("spool.sqlite")
    dead_letter_path: Path | None = Field(None, description="dead letters in a file of their own (default: state)")
    sequence_path: Path | None = Field(None, description="the sequence book in a file of its own (default: state)")
    alert_path: Path | None = Field(None, description="the alert book in a file of its own (default: state)")
    engine_state_path: Path | None = Field(
        None, description="the anti-cheat checkpoint in a file of its own (default: in the state file)"
    )
    state_save_interval_s: float = Field(
        2.0,
        ge=0,
        description="while messages keep coming, acks wait at most this long for the state save (none waiting: now)",
    )
    replay_window: int = Field(
        10_000, ge=1, description="how far below a device's highest seq a record may be (digests kept this far)"
    )
    seq_max_ahead: int = Field(
        1_000_000, ge=1, description="how far above a device's highest seq a record may be (seq_out_of_range)"
    )
    dead_letter_device_quota_mb: float = Field(16, gt=0, description="dead-letter bytes per device; oldest evicted")
    dead_letter_quota_mb: float = Field(1024, gt=0, description="dead-letter bytes in all; the biggest sender pays")
    spool_quota_mb: float = Field(1024, gt=0, description="disk for points while InfluxDB is away")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, lt=65536, description="Prometheus /metrics and /health; 0: any port")
    health_stall_s: float = Field(
        60.0, gt=0, description="/health answers 503 when a batch is held this long without being stored"
    )
    batch_max_messages: int = Field(2_000, ge=1)
    batch_max_ms: int = Field(200, ge=1, description="a batch is stored at most this long after its first message")
    batch_idle_ms: int = Field(
        20, ge=1, description="a batch ends when no message has come for this long (the broker waits for our acks)"
    )
    queue_max_messages: int = Field(20_000, ge=1)
    broker_inflight_messages: int = Field(
        1000,
        ge=1,
        description="the broker's inflight window for our session (Mosquitto's max_inflight_messages; ours: "
        "1 000): once half of it waits for acknowledgement and nothing more has come, a checkpoint is taken at once",
    )
    device_ack_interval_s: float = Field(
        0.5, ge=0, description="end-to-end acknowledgements to a device at most this often (stored batches merged)"
    )
    # Scale-out on NATS JetStream (docs/scale_out.md): `zhijian ingest route` moves device traffic from
    # Mosquitto into a stream cut into partitions by market; workers with transport=nats own partitions.
    transport: Literal["mqtt", "nats"] = Field(
        "mqtt", description="mqtt: one worker subscribed to Mosquitto (default); nats: partitions from JetStream"
    )
    nats_url: str = Field("nats://127.0.0.1:4222", description="comma-separated NATS server URLs")
    nats_stream: str = Field("ZHIJIAN_INGEST", pattern=r"^[A-Za-z0-9_-]+$", description="the ingest stream")
    nats_partitions: int = Field(
        16, ge=1, le=1024, description="partitions of the stream (fixed when the stream is created)"
    )
    nats_replicas: int = Field(1, ge=1, le=5, description="stream, lease and checkpoint replicas (cluster)")
    nats_max_age_s: float = Field(7 * 24 * 3600, gt=0, description="how long the stream keeps a message")
    nats_duplicate_window_s: float = Field(
        600, gt=0, description="the router's re-sends of one MQTT message within this are stored once"
    )
    nats_lease_s: float = Field(10.0, ge=1, description="a partition's lease lives this long unless renewed")
    nats_worker_id: str = Field(
        "", pattern=r"^[A-Za-z0-9_-]*$", description="names this worker in the leases; default host-pid"
    )
    nats_state_dir: Path = Field(Path("partitions"), description="one state directory per owned partition")
    nats_checkpoint_max_s: float = Field(
        2.0, gt=0, description="a partition's state is checkpointed (and its messages acked) at least this often"
    )
    router_inflight: int = Field(2_000, ge=1, description="messages the router has sent to JetStream, not yet acked")

    @model_validator(mode="after")
    def _client_id_of_the_account(self) -> IngestSettings:
        if not self.mqtt_client_id:
            self.mqtt_client_id = self.mqtt_username or "zhijian-ingest-1"
        return self

    @model_validator(mode="after")
    def _case_token_with_url(self) -> IngestSettings:
        if self.registry_api_url and not self.registry_api_token:
            raise ValueError("registry_api_url needs registry_api_token (a token of role ingest)")
        token = self.registry_api_token.get_secret_value() if self.registry_api_token else ""
        if token and not token.startswith("zjt_"):
            raise ValueError("registry_api_token must be a registry API token (zjt_…), not a placeholder")
        return self

    @model_validator(mode="after")
    def _partition_in_range(self) -> IngestSettings:
        if self.partition >= self.partitions:
            raise ValueError(f"partition {self.partition} must be below partitions ({self.partitions})")
        return self
