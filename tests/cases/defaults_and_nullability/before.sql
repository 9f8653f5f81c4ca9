CREATE TABLE credentials (id integer PRIMARY KEY, scope varchar(64), category varchar(64) NOT NULL, provider varchar(64));
INSERT INTO credentials VALUES (1, NULL, 'llm', 'openai'), (2, 'read', 'crm', 'hubspot');
