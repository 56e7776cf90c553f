"""Run operations under deadlines: commands, plugin calls, recurring monitors, history."""
