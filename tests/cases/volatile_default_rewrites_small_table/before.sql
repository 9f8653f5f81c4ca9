CREATE TABLE tools (id integer PRIMARY KEY);
INSERT INTO tools SELECT generate_series(1, 50);
