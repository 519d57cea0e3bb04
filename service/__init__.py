"""Serve monthly sales forecasts from the model store over HTTP, under gunicorn.

`service.app.create_app` builds the Flask application; `python -m service` runs it
under gunicorn with `service/gunicorn_conf.py`.
"""
