-- Where an actor runs unless a script's call says otherwise: 'fresh' (a container of its
-- own) or 'warm' (a run in a warm container of its instance).
ALTER TABLE actors ADD COLUMN sandbox TEXT NOT NULL DEFAULT 'fresh';
