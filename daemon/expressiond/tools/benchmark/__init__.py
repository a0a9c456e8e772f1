"""``expressiond benchmark``: run.py (the command: modes, rounds, ratios, JSON), modes.py (each
measured mode), daemon.py (the real daemon measured from outside), streams.py (one process with
N cameras vs N processes) and report.py (the table and the plots).

Thread: the command's main thread; measured daemons are child processes.
"""
