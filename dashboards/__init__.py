"""Supervisor dashboards: the InfluxQL behind each view (Grafana provisioning comes in a later issue)."""

from .queries import QUERIES

__all__ = ["QUERIES"]
