"""The app from the COHORTFLOW_* environment, for `uvicorn views.api.serve:app` (several processes)."""

from cohortflow.settings import load_settings
from views.api.app import create_app
from views.api.commands import freeze_heap

app = create_app(load_settings())
freeze_heap()
