"""The corpus: which applications, which model modules, and where their metadata lives.

Stdlib only: the driver imports this inside the corpus venv, the tests in ours. Each entry
imports *only the model modules*. ``bare`` lists packages whose ``__init__`` would import the
whole application (its server, its UI clients): they are entered without running it, the
smallest repair that keeps the model modules untouched. An application that create_all cannot
build on PostgreSQL at all is repaired in ``driver.REPAIRS``, each repair documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    name: str
    package: str  # the PyPI distribution pinned in requirements.txt
    modules: tuple[str, ...]  # imported for their side effect of defining the tables
    metadata: tuple[str, ...]  # "module:attr.path" of each MetaData (or class with .metadata)
    bare: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    extensions: tuple[str, ...] = ()  # create_all needs them created first (as the app's docs say)
    migrations: str | None = None  # how the app builds its database itself (driver.MIGRATORS)


APPS: tuple[App, ...] = (
    App(
        name="optuna",
        package="optuna",
        modules=("optuna.storages._rdb.models",),
        metadata=("optuna.storages._rdb.models:BaseModel.metadata",),
        migrations="optuna",
    ),
    App(
        name="mlflow",
        package="mlflow-skinny",
        modules=(
            "mlflow.store.tracking.dbmodels.models",
            "mlflow.store.model_registry.dbmodels.models",
        ),
        metadata=("mlflow.store.db.base_sql_model:Base.metadata",),
        migrations="mlflow",
    ),
    App(
        name="prefect",
        package="prefect",
        modules=("prefect.server.database.orm_models",),
        metadata=("prefect.server.database.orm_models:Base.metadata",),
        extensions=("pg_trgm",),  # its migrations create it for the trigram indexes
    ),
    App(
        name="zenml",
        package="zenml",  # SQLModel
        modules=("zenml.zen_stores.schemas",),
        metadata=("sqlmodel:SQLModel.metadata",),
    ),
    App(
        name="langflow",
        package="langflow-base",  # SQLModel
        modules=("langflow.services.database.models",),
        metadata=("sqlmodel:SQLModel.metadata",),
        bare=("langflow",),
    ),
    App(
        name="phoenix",
        package="arize-phoenix",
        modules=("phoenix.db.models",),
        metadata=("phoenix.db.models:Base.metadata",),
        bare=("phoenix",),
        migrations="phoenix",
    ),
    App(
        name="letta",
        package="letta",  # pgvector
        modules=("letta.orm",),
        metadata=("letta.orm:Base.metadata",),
        # letta picks its vector column type from its settings: PostgreSQL's when a URI is set
        env={"LETTA_PG_URI": "postgresql://corpus@127.0.0.1/corpus"},
        extensions=("vector",),
    ),
    App(
        name="dagster",
        package="dagster",
        modules=(
            "dagster._core.storage.runs.schema",
            "dagster._core.storage.event_log.schema",
            "dagster._core.storage.schedules.schema",
        ),
        # three storages that dagster-postgres keeps in one database, sharing secondary_indexes
        metadata=(
            "dagster._core.storage.runs.schema:RunStorageSqlMetadata",
            "dagster._core.storage.event_log.schema:SqlEventLogStorageMetadata",
            "dagster._core.storage.schedules.schema:ScheduleStorageSqlMetadata",
        ),
    ),
    App(
        name="celery",
        package="celery",  # the database result backend: explicit sequences
        modules=("celery.backends.database.models",),
        metadata=("celery.backends.database.models:ResultModelBase.metadata",),
    ),
)

BY_NAME = {app.name: app for app in APPS}
