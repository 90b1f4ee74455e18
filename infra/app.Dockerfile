# The HTTP app alone (app/http_app.py: the fast route) for deployments without LangGraph's licensed
# server: uvicorn worker processes, threads in Postgres (DATABASE_URI). From the repo root:
#   docker build -f infra/app.Dockerfile -t expressway-app .
FROM python:3.11-slim
WORKDIR /srv/expressway
COPY . .
RUN pip install --no-cache-dir ".[serve]"
# Nothing may reach a model hub at run time; uvicorn starts WEB_CONCURRENCY worker processes
# (about one per core: each runs its own share of the runs, threads are shared through Postgres).
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WEB_CONCURRENCY=2
EXPOSE 8000
# Run from the directory that holds langgraph.json: its `auth` protects the fast route.
CMD ["uvicorn", "app.http_app:app", "--host", "0.0.0.0", "--port", "8000"]
