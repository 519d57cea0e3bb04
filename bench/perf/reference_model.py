"""The pipeline the comparison servers serve: the seed's monthly regression.

Month of year one-hot encoded, plus a time index, then `LinearRegression`, fitted on
the bundled wineind series. The plain baseline and MLServer both serve this very
pipeline (saved once with joblib), so they differ only in how they serve it. It is
not the service's model: the training job may pick a costlier one, and the
baseline must not look slow because of what it predicts with.

The pipeline takes a DataFrame with a `date` column of `YYYY-MM` or `YYYY-MM-DD`
text (or bytes: MLServer's pandas codec hands BYTES tensors over undecoded), as the
service's /predict and V2 infer do. This module must be importable where the
pipeline is unpickled: the MLServer venv gets it through PYTHONPATH.
"""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder


def calendar(rows: pd.DataFrame) -> pd.DataFrame:
    """Month of year (1-12) and months since year 0 of every row's date."""
    dates = rows["date"]
    if len(dates) and isinstance(dates.iloc[0], bytes):
        dates = dates.str.decode("ascii")
    stamps = pd.to_datetime(dates.astype(str).str.slice(0, 7), format="%Y-%m")
    month = stamps.dt.month.to_numpy()
    return pd.DataFrame({"month": month,
                         "t": stamps.dt.year.to_numpy() * 12 + month - 1})


def build() -> Pipeline:
    encode = ColumnTransformer(
        [("month", OneHotEncoder(categories=[list(range(1, 13))]), ["month"])],
        remainder="passthrough")
    return Pipeline([("calendar", FunctionTransformer(calendar)),
                     ("encode", encode),
                     ("regress", LinearRegression())])


def fit(csv_path) -> Pipeline:
    history = pd.read_csv(csv_path)
    rows = pd.DataFrame({"date": history["date"].astype(str)})
    return build().fit(rows, np.asarray(history["sales"], dtype=np.float64))
