"""The ceiling: a Flask route that returns fixed JSON and does nothing else.

Served by gunicorn with the service's own configuration (service/gunicorn_conf.py:
worker class, workers, threads, keep-alive), it is as fast as Flask under that
gunicorn can answer at all on this machine; the service's figures are read as a
share of it.
"""

from flask import Flask

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def hello():
    return {"status": "ok"}
