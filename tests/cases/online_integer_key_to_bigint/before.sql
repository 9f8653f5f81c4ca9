CREATE TABLE accounts (id serial PRIMARY KEY, label text);
CREATE TABLE payments (id integer PRIMARY KEY, account_id integer REFERENCES accounts (id));
INSERT INTO accounts (label) VALUES ('a'), ('b');
INSERT INTO payments VALUES (1, 1), (2, 2);
