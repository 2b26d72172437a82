"""The application for ASGI servers: ``uvicorn bascule.asgi:app`` (settings from BASCULE_*)."""

from bascule.app import create_app

app = create_app()
