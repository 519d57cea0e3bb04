"""Learn monthly sales from a CSV history and publish a versioned model artifact.

`python -m training --data FILE --model-dir DIR` loads and checks the file
(`training.data`), backtests the candidate models at rolling cut-offs
(`training.backtest`), chooses the models that serve each series and gates them
against seasonal naive (`training.selection`), fits them on every month and
calibrates prediction intervals (`training.procedure`), and writes a new version
into the model directory (`training.artifact`).
"""
