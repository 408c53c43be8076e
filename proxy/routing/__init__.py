"""Which backend answers: rules, task and subagent detection, the routing snapshot, config import and
export, the seed route."""
