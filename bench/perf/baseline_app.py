"""The plain baseline: how a Flask model server is usually written.

The fitted pipeline is loaded once per worker; every request builds a DataFrame from
the JSON body and calls the pipeline's `predict`, and the answer goes out through
`jsonify`. No validation beyond what pandas and scikit-learn raise, no metrics, no
request log: it is the floor the service is compared with, not a product. Served by
gunicorn with two sync workers, as such apps usually are.

Settings from the environment: BENCH_BASELINE_MODEL (the joblib file) and
BENCH_BASELINE_LAST (the last month of the history, `YYYY-MM`, where forecasts
start).
"""

import os

import joblib
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ["BENCH_BASELINE_MODEL"])
last_month = pd.Timestamp(os.environ["BENCH_BASELINE_LAST"] + "-01")


@app.get("/healthz")
def healthz():
    return jsonify({"status": "alive"})


@app.post("/predict")
def predict():
    rows = pd.DataFrame(request.get_json()["instances"])
    return jsonify({"predictions": model.predict(rows).tolist()})


@app.post("/forecast")
def forecast():
    horizon = int(request.get_json().get("horizon", 12))
    months = pd.date_range(last_month + pd.offsets.MonthBegin(1), periods=horizon,
                           freq="MS")
    rows = pd.DataFrame({"date": months.strftime("%Y-%m-%d")})
    sales = model.predict(rows)
    return jsonify({"forecast": [{"date": d, "sales": float(s)}
                                 for d, s in zip(rows["date"], sales)]})
