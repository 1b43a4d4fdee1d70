"""The training job: prepare, train, export, evaluate, report, publish."""
