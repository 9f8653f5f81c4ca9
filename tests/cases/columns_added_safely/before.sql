CREATE TABLE tenants (id integer PRIMARY KEY);
INSERT INTO tenants VALUES (1), (2), (3);
