from tickml.cli import app

app()
