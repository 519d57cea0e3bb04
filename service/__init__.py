"""Serve monthly sales forecasts from the model store over HTTP, under gunicorn.

`service.app.create_app` builds the Flask application; `python -m service` runs it
under gunicorn with `service/gunicorn_conf.py`.
"""

# The project's version, as pyproject.toml and the chart's appVersion give it (a test
# keeps the three equal); V2 server metadata reports it.
__version__ = "0.1.0"
