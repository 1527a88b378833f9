"""The task world: seeded, procedurally generated prompts, answers, cues and behaviours."""
