"""CARLA-only code: leaderboard agent, CARLA env backend, sensor rig, route planner."""
