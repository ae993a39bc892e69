"""The application: it alone reads the command line, wires a plan to its target, metric source, flags and
controller, says what went wrong, and turns how a run ended into the process's exit code.

Headless runs, the detached controller, the gate alone (`brahma preflight`), the flag commands and the
console are its clients. Nothing of the domain, nor the console, imports it."""
