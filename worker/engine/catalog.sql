-- schemaheal: the whole catalog read, in one round trip.
-- $1: the schemas (namespaces) a manifest owns. Each column is a JSON array of one kind of object.
-- Run with search_path = pg_catalog, so format_type() qualifies every user type.
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY ($1::text[])
), rel AS (
    SELECT c.oid, c.relname, ns.nspname
    FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
)
SELECT
    current_setting('server_version_num')::int AS server_version,
    (SELECT coalesce(json_agg(nspname), '[]') FROM ns) AS schemas,
    (SELECT coalesce(json_agg(json_build_object('name', e.extname, 'schema', n.nspname)), '[]')
       FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace) AS extensions,
    (SELECT coalesce(json_agg(json_build_object(
         'schema', ns.nspname, 'name', t.typname,
         'labels', (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = t.oid))), '[]')
       FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
      WHERE t.typtype = 'e') AS enums,
    (SELECT coalesce(json_agg(json_build_object(
         'schema', ns.nspname, 'name', c.relname,
         'data_type', format_type(s.seqtypid, NULL), 'start', s.seqstart,
         'increment', s.seqincrement, 'min_value', s.seqmin, 'max_value', s.seqmax,
         'cycle', s.seqcycle, 'cache', s.seqcache,
         'owned_by', (SELECT json_build_array(oc.relname, a.attname)
                        FROM pg_depend d
                        JOIN pg_class oc ON oc.oid = d.refobjid
                        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                       WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
                       LIMIT 1))), '[]')
       FROM pg_sequence s
       JOIN pg_class c ON c.oid = s.seqrelid
       JOIN ns ON ns.oid = c.relnamespace
      WHERE NOT EXISTS (SELECT 1 FROM pg_depend d  -- identity columns' internal sequences
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                           AND d.deptype = 'i')) AS sequences,
    (SELECT coalesce(json_agg(json_build_object(
         'oid', rel.oid, 'schema', rel.nspname, 'name', rel.relname,
         'comment', obj_description(rel.oid, 'pg_class'),
         'size', pg_table_size(rel.oid))), '[]')
       FROM rel) AS tables,
    (SELECT coalesce(json_agg(json_build_object(
         'rel', a.attrelid, 'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
         'not_null', a.attnotnull, 'expr', pg_get_expr(d.adbin, d.adrelid),
         'identity', a.attidentity, 'generated', a.attgenerated,
         'comment', col_description(a.attrelid, a.attnum)) ORDER BY a.attrelid, a.attnum), '[]')
       FROM pg_attribute a
       JOIN rel ON rel.oid = a.attrelid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attnum > 0 AND NOT a.attisdropped) AS columns,
    (SELECT coalesce(json_agg(json_build_object(
         'rel', co.conrelid, 'name', co.conname, 'type', co.contype, 'valid', co.convalidated,
         'columns', (SELECT json_agg(a.attname ORDER BY k.i)
                       FROM unnest(co.conkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n),
         'ref_schema', fn.nspname, 'ref_table', fc.relname,
         'ref_columns', (SELECT json_agg(a.attname ORDER BY k.i)
                           FROM unnest(co.confkey) WITH ORDINALITY k(n, i)
                           JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n),
         'on_delete', co.confdeltype, 'on_update', co.confupdtype,
         'deferrable', co.condeferrable, 'deferred', co.condeferred,
         'expr', CASE WHEN co.contype = 'c' THEN pg_get_expr(co.conbin, co.conrelid) END,
         'index', ci.relname)), '[]')
       FROM pg_constraint co
       JOIN rel ON rel.oid = co.conrelid
       LEFT JOIN pg_class fc ON fc.oid = co.confrelid
       LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
       LEFT JOIN pg_class ci ON ci.oid = co.conindid
      WHERE co.contype IN ('p', 'u', 'f', 'c')) AS constraints,
    (SELECT coalesce(json_agg(json_build_object(
         'rel', i.indrelid, 'name', ic.relname, 'unique', i.indisunique,
         'valid', i.indisvalid AND i.indisready, 'method', am.amname,
         'key_count', i.indnkeyatts, 'nulls_not_distinct', i.indnullsnotdistinct,
         'where', pg_get_expr(i.indpred, i.indrelid),
         'keys', (SELECT json_agg(json_build_object(
                      'column', a.attname,
                      'expr', CASE WHEN k.n = 0 THEN pg_get_indexdef(i.indexrelid, k.i::int, true) END,
                      'opclass', CASE WHEN NOT oc.opcdefault THEN oc.opcname END,
                      'option', i.indoption[k.i - 1]) ORDER BY k.i)
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, i)
                    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                    LEFT JOIN pg_opclass oc ON oc.oid = i.indclass[k.i - 1]))), '[]')
       FROM pg_index i
       JOIN rel ON rel.oid = i.indrelid
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_am am ON am.oid = ic.relam) AS indexes
