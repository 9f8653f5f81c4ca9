-- before the swap
DROP VIEW public."Big codes"
DROP VIEW public.codes
DROP TRIGGER orders_audit ON public.orders
DROP POLICY positive ON public.orders
DROP POLICY own ON public.lines
DROP INDEX public.orders_code_idx
ALTER TABLE public.lines DROP CONSTRAINT lines_code_fkey
ALTER TABLE public.orders DROP CONSTRAINT orders_code_key
-- after the swap
ALTER INDEX public.orders_code_idx__sh_ix RENAME TO orders_code_idx
ALTER TABLE public.orders CLUSTER ON orders_code_idx
COMMENT ON INDEX public.orders_code_idx IS 'by code'
ALTER TABLE public.orders ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code_key__sh_ix DEFERRABLE INITIALLY DEFERRED
ALTER TABLE public.orders REPLICA IDENTITY USING INDEX orders_code_key
COMMENT ON CONSTRAINT orders_code_key ON public.orders IS 'it''s unique'
ALTER TABLE public.lines ADD CONSTRAINT lines_code_fkey FOREIGN KEY (code) REFERENCES public.orders(code) NOT VALID
CREATE VIEW public.codes WITH (security_barrier=true) AS SELECT orders.id,
    orders.code
   FROM orders
ALTER VIEW public.codes OWNER TO app
GRANT SELECT ON public.codes TO reader WITH GRANT OPTION
GRANT UPDATE (code) ON public.codes TO PUBLIC
COMMENT ON VIEW public.codes IS 'codes'
COMMENT ON COLUMN public.codes.code IS 'the code'
CREATE VIEW public."Big codes" AS SELECT codes.code FROM public.codes
ALTER VIEW public."Big codes" OWNER TO "Ops Team"
CREATE TRIGGER orders_audit BEFORE UPDATE OF code ON public.orders FOR EACH ROW EXECUTE FUNCTION audit()
ALTER TABLE public.orders DISABLE TRIGGER orders_audit
COMMENT ON TRIGGER orders_audit ON public.orders IS 'audit'
CREATE TRIGGER codes_ro INSTEAD OF INSERT ON public.codes FOR EACH ROW EXECUTE FUNCTION ro()
ALTER TABLE public.codes ENABLE ALWAYS TRIGGER codes_ro
CREATE POLICY positive ON public.orders AS PERMISSIVE FOR SELECT TO reader, PUBLIC USING ((code > 0))
COMMENT ON POLICY positive ON public.orders IS 'only +'
CREATE POLICY own ON public.lines AS RESTRICTIVE FOR ALL TO PUBLIC WITH CHECK ((code IN ( SELECT orders.code FROM public.orders)))
