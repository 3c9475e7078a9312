"""Evaluation: open-loop metrics (ST-P3 / UniAD protocols), closed-loop scoring, reports and plots.

Metric functions are pure functions of arrays (see openloop_metrics, occupancy, closed_loop_scoring);
openloop.py runs planners over a reader and converts frames once at the boundary.
"""
