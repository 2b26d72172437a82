"""The application for ASGI servers: ``uvicorn bascule.asgi:app`` (settings from BASCULE_*).

``app`` is the gate in front of everything the application serves (``create_app()``'s
``front``): what the server calls first on every request. ``route`` is the same gate
for a server told it is an ASGI 3 callable (``uvicorn --interface asgi3
bascule.asgi:route``), one coroutine fewer per request: see ``MaintenanceGate.route``.
"""

from bascule.app import create_app

app = create_app()
route = app.route
