"""santri_api HTTP API (FastAPI). Start with `uvicorn santri_api.main:app` or
`gunicorn -k uvicorn.workers.UvicornWorker santri_api.main:app`; DATABASE_URL from the
environment or the app's .env file."""

import logging
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from santri_api import __version__, config, db
from santri_api import gis  # since 1.1.0

log = logging.getLogger("santri_api")
if not log.handlers and not logging.getLogger().handlers:
    # uvicorn/gunicorn configure only their own loggers: give ours a plain stderr handler.
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)

# Probe used by /health; must stay cheap and side-effect free.
HEALTH_SQL = "SELECT 1"
HEALTH_CONNECT_TIMEOUT = 2
HEALTH_STATEMENT_TIMEOUT_MS = 2000


# Read once at import: it names the code this process runs, even if the checkout moves
# on before the restart.
REVISION = config.read_revision()


@asynccontextmanager
async def lifespan(_app):
    log.info("santri_api %s (revision %s) starting", __version__, REVISION)
    db.probe()  # logs only: a database that is down must not stop the app from serving /health
    yield


app = FastAPI(title="santri_api", version=__version__, lifespan=lifespan)
app.include_router(gis.router)  # since 1.1.0


@app.exception_handler(db.DatabaseUnavailable)
async def database_unavailable(_request: Request, exc: db.DatabaseUnavailable):
    return JSONResponse(status_code=503, content={"detail": "database unavailable", "error": str(exc)})


@app.exception_handler(psycopg.OperationalError)
async def database_error(_request: Request, exc: psycopg.OperationalError):
    return JSONResponse(status_code=503, content={"detail": "database error", "error": str(exc).strip()})


@app.get("/health")
def health():
    """200 when `SELECT 1` answers within the timeout, else 503 (JSON both ways)."""
    body = {"version": __version__, "revision": REVISION}
    try:
        with db.connect(timeout=HEALTH_CONNECT_TIMEOUT, statement_timeout_ms=HEALTH_STATEMENT_TIMEOUT_MS) as conn:
            conn.execute(HEALTH_SQL).fetchone()
    except (db.DatabaseUnavailable, psycopg.Error) as exc:
        log.warning("health check failed: %s", exc)
        return JSONResponse(status_code=503, content={"status": "error", "db": "down", **body,
                                                      "error": str(exc).strip()})
    return {"status": "ok", "db": "ok", **body}


@app.get("/santri/search")
def search_santri(q: Annotated[str, Query(min_length=2, max_length=100)],
                  limit: Annotated[int, Query(ge=1, le=100)] = 20,
                  conn=Depends(db.connection)):
    """Fuzzy name search (pg_trgm GIN index: `%` similarity or ILIKE substring)."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return conn.execute(
        """SELECT id, nis, nama, kabupaten, provinsi, pesantren_id,
                  round(similarity(nama, %(q)s)::numeric, 3) AS kemiripan
             FROM santri_pribadi
            WHERE nama %% %(q)s OR nama ILIKE %(pattern)s
            ORDER BY kemiripan DESC, id
            LIMIT %(limit)s""",
        {"q": q, "pattern": pattern, "limit": limit},
    ).fetchall()


class SkorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skor: Decimal = Field(ge=0, le=100, max_digits=5, decimal_places=2)
    kategori: str = Field("umum", min_length=1, max_length=40)


@app.post("/santri/{santri_id}/skor")
def set_skor(santri_id: Annotated[int, Path(gt=0, lt=2 ** 63)], body: SkorIn, conn=Depends(db.connection)):
    """Insert or update a santri's score; the V5 trigger updates santri_map/pesantren_map."""
    try:
        with conn.transaction():
            row = conn.execute(
                """INSERT INTO santri_skor (santri_id, skor, kategori) VALUES (%s, %s, %s)
                   ON CONFLICT (santri_id) DO UPDATE SET skor = EXCLUDED.skor, kategori = EXCLUDED.kategori
                   RETURNING santri_id, skor, kategori, updated_at, (xmax = 0) AS created""",
                (santri_id, body.skor, body.kategori),
            ).fetchone()
            mapped = conn.execute("SELECT skor FROM santri_map WHERE santri_id = %s", (santri_id,)).fetchone()
    except psycopg.errors.ForeignKeyViolation:
        raise HTTPException(status_code=404, detail="santri %d not found" % santri_id)
    row["map_skor"] = mapped["skor"] if mapped else None
    return row
