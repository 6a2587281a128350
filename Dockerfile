FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jejak ./jejak
COPY domain ./domain
COPY store ./store
COPY projections ./projections
COPY audit ./audit
COPY api ./api
COPY feeds ./feeds
COPY witness ./witness
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/jejak jejak && mkdir -p /var/lib/jejak/witness /var/lib/jejak/signer /var/lib/jejak/vault && chown -R jejak /var/lib/jejak && chmod 700 /var/lib/jejak/vault
USER jejak
ENV JEJAK_PROFILE=prod JEJAK_KEYS_DIR=/run/secrets/jejak
EXPOSE 8000
ENTRYPOINT ["jejak"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
