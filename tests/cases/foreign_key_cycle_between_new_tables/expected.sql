BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
CREATE TABLE IF NOT EXISTS public.departments (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    head_id uuid,
    CONSTRAINT departments_pkey PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS public.employees (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    department_id uuid,
    manager_id uuid,
    CONSTRAINT employees_pkey PRIMARY KEY (id),
    CONSTRAINT employees_department_id_fkey FOREIGN KEY (department_id) REFERENCES public.departments (id),
    CONSTRAINT employees_manager_id_fkey FOREIGN KEY (manager_id) REFERENCES public.employees (id)
);
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.departments ADD CONSTRAINT departments_head_id_fkey FOREIGN KEY (head_id) REFERENCES public.employees (id) DEFERRABLE INITIALLY DEFERRED NOT VALID;
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '3600000ms';
ALTER TABLE public.departments VALIDATE CONSTRAINT departments_head_id_fkey;
COMMIT;
