"""Seeded chaos schedules and soaks (issue 18): many faults, aimed by role, with the time
PVE's design needs between them, judged afterwards from the one timeline.

- ``schedule``: the schedule as data and as a file (JSON) that can be edited and replayed;
- ``generate``: a schedule from a seed, a fault mix and the cluster's windows;
- ``predict``: what PVE's design predicts for each fault (which guest moves where, when);
- ``runner``: runs a schedule on a lab through the fault verbs, resolving roles;
- ``judge``: the findings, a pure function of the timeline and the run's record;
- ``soak``: schedules back to back with a summary; ``shrink``: the shortest failing replay.
"""
