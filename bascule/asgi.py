"""The application for ASGI servers: ``uvicorn bascule.asgi:app`` (settings from BASCULE_*).

``app`` is the gate in front of everything the application serves (``create_app()``'s
``front``): what the server calls first on every request.
"""

from bascule.app import create_app

app = create_app().front
