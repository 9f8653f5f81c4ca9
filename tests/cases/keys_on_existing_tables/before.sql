-- legacy tables created without any key or constraint
CREATE TABLE tenants (id integer, slug varchar(64));
CREATE TABLE tools (id integer NOT NULL, tenant_id integer, rank integer);
INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex');
INSERT INTO tools VALUES (10, 1, 0), (11, 2, 5);
