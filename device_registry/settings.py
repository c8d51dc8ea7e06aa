"""Registry settings: ``ZHIJIAN_`` environment variables or a ``.env``-style file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .body_limit import MAX_BODY_BYTES
from .credentials import KEY_SECRET_BYTES
from .errors import RegistryError


class RegistrySettings(BaseSettings):
    """Where the registry lives and what provisioned bundles point to."""

    model_config = SettingsConfigDict(env_prefix="ZHIJIAN_", env_file=None, extra="ignore")

    registry_url: str = Field("sqlite:///registry.sqlite", description="SQLAlchemy URL; postgresql://… for PostgreSQL")
    key_secret_file: Path = Field(
        Path("registry.key"), description="32+ random bytes, hex; devices' keys derive from it"
    )
    key_secret: SecretStr | None = Field(None, description="the key secret itself, hex (instead of the file)")
    bundle_broker_host: str = Field("127.0.0.1", description="the broker host written into bundles")
    bundle_broker_port: int = Field(1883, gt=0, lt=65536)
    bundle_ca_file: Path | None = Field(None, description="CA certificate (PEM) put into bundles: TLS on")
    device_ca_dir: Path | None = Field(
        None, description="a local CA folder (`zhijian registry ca init`): bundles then carry a client certificate"
    )
    bundle_state_dir: str = Field("/var/lib/zhijian/{device}", description="the agent's state folder")
    broker_passwd_file: Path | None = Field(None, description="Mosquitto password file to keep current")
    broker_acl_file: Path | None = Field(None, description="Mosquitto ACL file to keep current")
    broker_service_accounts: Path | None = Field(None, description="password-file lines for ingest/admin accounts")
    broker_pid_file: Path | None = Field(
        None, description="Mosquitto's pid file, sent SIGHUP after each change (only if it runs as this user)"
    )
    broker_files_group: str | None = Field(
        None, description="Mosquitto's group: the broker files are written 0640 in it (else 0600)"
    )
    broker_check_host: str | None = Field(
        None, description="the broker's service listener, asked after each change whether it applied the files"
    )
    broker_check_port: int = Field(1883, gt=0, lt=65536)
    broker_check_timeout_s: float = Field(10.0, gt=0, le=300, description="how long to wait for the broker")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, gt=0, lt=65536)
    api_max_body_bytes: int = Field(
        MAX_BODY_BYTES, ge=1024, description="request bodies larger than this are refused (413) unread"
    )

    def key_secret_bytes(self) -> bytes:
        """The key secret, from ``ZHIJIAN_KEY_SECRET`` or the key secret file."""
        if self.key_secret is not None:
            text, where = self.key_secret.get_secret_value(), "ZHIJIAN_KEY_SECRET"
        else:
            where = str(self.key_secret_file)
            try:
                text = self.key_secret_file.read_text(encoding="ascii")
            except OSError as exc:
                raise RegistryError(
                    f"{where}: cannot read the key secret ({exc.strerror}); run `zhijian registry init`"
                ) from exc
        try:
            secret = bytes.fromhex(text.strip())
        except ValueError as exc:
            raise RegistryError(f"{where}: the key secret must be hex") from exc
        if len(secret) < KEY_SECRET_BYTES:
            raise RegistryError(f"{where}: the key secret must be at least {KEY_SECRET_BYTES} bytes")
        return secret
