"""Learn monthly sales from a CSV history and publish a versioned model artifact.

`python -m training --data FILE --model-dir DIR` loads and checks the file
(`training.data`), fits one model per series (`training.models`), scores it on a
time-ordered holdout against seasonal naive (`training.evaluate`) and writes a new
version into the model directory (`training.artifact`).
"""
