"""A/A calibration (`brahma calibrate`): a plan replayed over history with both tracks drawn from stable's population,
to tell how often it would pause or roll back a release identical to stable, and which limits do it."""
