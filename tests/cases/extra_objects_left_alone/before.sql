CREATE TABLE tenants (id integer PRIMARY KEY, name text, legacy_flag boolean,
                      CONSTRAINT tenants_name_check CHECK (length(name) > 2));
CREATE TABLE audit_old (id integer);
INSERT INTO tenants VALUES (1, 'acme', true);
