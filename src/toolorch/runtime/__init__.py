"""The episode runtime that training, eval and serving share: the policy <-> tools loop, the toolbox,
experts, policies, parsing, prompts, chat rendering and the worlds (env/) tools run in."""
