-- Every verdict a stage's canary comparison recorded (its interim looks, then its final
-- verdict), so the dashboard can show each metric over time; stages.verdict keeps the newest.
CREATE TABLE stage_verdicts (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  stage_id INTEGER NOT NULL REFERENCES stages(id),
  verdict  TEXT NOT NULL,
  at       INTEGER NOT NULL
);
CREATE INDEX stage_verdicts_stage ON stage_verdicts (stage_id, id);
