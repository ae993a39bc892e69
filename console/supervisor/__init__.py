"""Supervision that outlives the terminal: a detached controller per rollout, served on a Unix socket.

`files` names what a rollout keeps in the state dir (lock, socket, log, launch record), `server` is
the detached process (`brahma supervise`), `client` talks to it and starts it when it is not running.
"""
