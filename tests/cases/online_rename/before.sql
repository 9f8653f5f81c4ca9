CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO users VALUES (1, 'ada', 'ada@example.com'), (2, 'grace', NULL);
