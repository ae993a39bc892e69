"""The journal's vocabulary: its events, the journal file itself, and the rollout's state as a fold over it.

Below the controller, which writes it; read by the controller, the report, the narrator, the notifier,
the supervisor and the console alike."""
