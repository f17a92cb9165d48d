"""ASGI entry point: `uvicorn services.gateway.asgi:app` (or `python -m services.gateway.asgi`)."""

from services.gateway.app import create_app

app = create_app()

if __name__ == "__main__":
    import uvicorn

    settings = app.gateway.settings
    uvicorn.run(app, host=settings.HOST, port=settings.PORT)
