"""``python -m zhijian_cli`` is the ``zhijian`` command."""

from .main import app

app(prog_name="zhijian")
