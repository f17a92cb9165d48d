"""ASGI entry point: `uvicorn services.gateway.asgi:app` (or `python -m services.gateway.asgi`)."""

from services.gateway.transport import create_asgi_app

app = create_asgi_app()

if __name__ == "__main__":
    import uvicorn

    settings = app.gateway.settings
    uvicorn.run(app, host=settings.HOST, port=settings.PORT)
