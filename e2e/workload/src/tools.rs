//! The MCP tools: put_note, get_note, count_notes, slow_query.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, DiscoverResult, ErrorCode,
    Implementation, InitializeRequestParams, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ResultType, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::eras::Eras;
use crate::metrics::Metrics;
use crate::pool::{Db, DbError};

/// JSON-RPC error codes used for database-related failures. The `data` field
/// always carries `kind` and, where retrying makes sense, `retry_after_ms`.
pub mod codes {
    /// Pool exhausted (wait queue full or acquire timeout); `data.pool` has the stats.
    pub const POOL_EXHAUSTED: i32 = -32050;
    /// Database unreachable or reconnecting.
    pub const DB_UNAVAILABLE: i32 = -32051;
    /// The database answered with an error.
    pub const DB_ERROR: i32 = -32052;
    /// The query ran out of time.
    pub const QUERY_TIMEOUT: i32 = -32053;
    /// The server is shutting down.
    pub const SHUTTING_DOWN: i32 = -32054;
}

/// Longest accepted `slow_query` sleep.
pub const MAX_SLOW_QUERY_MS: u64 = 60_000;
/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 512;
/// Longest accepted value.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Tracks in-flight tool calls so shutdown can wait for them.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Decrements the in-flight count on drop.
pub struct InFlightGuard {
    inner: Arc<InFlight>,
    metrics: Arc<Metrics>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.metrics.inflight_calls.dec();
        if self.inner.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

impl InFlight {
    /// Number of calls in progress.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Wait until no call is in progress or `limit` passes; returns whether idle.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

/// State shared by all MCP sessions.
pub struct Shared {
    pub db: Arc<Db>,
    pub metrics: Arc<Metrics>,
    pub inflight: Arc<InFlight>,
    /// The protocol eras this server answers.
    pub eras: Eras,
}

impl Shared {
    fn enter(&self) -> InFlightGuard {
        self.inflight.count.fetch_add(1, Ordering::SeqCst);
        self.metrics.inflight_calls.inc();
        InFlightGuard {
            inner: self.inflight.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Convert a database error into the MCP error the client sees.
pub fn to_mcp_error(e: &DbError, db: &Db) -> ErrorData {
    let code = match e {
        DbError::Exhausted { .. } => codes::POOL_EXHAUSTED,
        DbError::Unavailable { .. } => codes::DB_UNAVAILABLE,
        DbError::Query { .. } => codes::DB_ERROR,
        DbError::QueryTimeout { .. } => codes::QUERY_TIMEOUT,
        DbError::ShuttingDown => codes::SHUTTING_DOWN,
    };
    let pool = match e {
        DbError::Exhausted { stats, .. } => *stats,
        _ => db.stats(),
    };
    let mut data = json!({
        "kind": e.kind(),
        "pool": pool,
        "db": db.phase(),
    });
    if let (Some(ra), Some(obj)) = (e.retry_after_ms(), data.as_object_mut()) {
        obj.insert("retry_after_ms".into(), json!(ra));
    }
    ErrorData::new(ErrorCode(code), e.message(), Some(data))
}

/// The MCP server handler; one instance per session, all sharing [`Shared`].
#[derive(Clone)]
pub struct Workload {
    shared: Arc<Shared>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PutNoteArgs {
    /// The note key (1..=512 characters).
    pub key: String,
    /// The note text (up to 64 KiB).
    pub value: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetNoteArgs {
    /// The note key.
    pub key: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SlowQueryArgs {
    /// How long the query sleeps inside Postgres, in milliseconds (0..=60000).
    pub ms: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoArgs {}

fn check_key(key: &str) -> Result<(), ErrorData> {
    if key.is_empty() || key.chars().count() > MAX_KEY_LEN {
        return Err(ErrorData::invalid_params(
            format!("key must be 1..={MAX_KEY_LEN} characters"),
            None,
        ));
    }
    Ok(())
}

impl Workload {
    /// A handler over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            tool_router: Self::tool_router(),
        }
    }

    async fn run<F, Fut>(&self, tool: &'static str, f: F) -> Result<CallToolResult, ErrorData>
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = Result<Value, DbError>>,
    {
        let _guard = self.shared.enter();
        let started = Instant::now();
        self.shared.metrics.call(tool);
        let res = f(self.shared.clone()).await;
        self.shared
            .metrics
            .duration(tool, started.elapsed().as_secs_f64());
        match res {
            Ok(v) => Ok(CallToolResult::structured(v)),
            Err(e) => {
                self.shared.metrics.error(tool, e.kind());
                tracing::warn!(
                    event = "tool_error",
                    tool,
                    kind = e.kind(),
                    error = %e.message(),
                    "tool call failed"
                );
                Err(to_mcp_error(&e, &self.shared.db))
            }
        }
    }
}

#[tool_router]
impl Workload {
    #[tool(
        description = "Store a note (insert or update). Succeeds only after the write is committed."
    )]
    async fn put_note(
        &self,
        Parameters(PutNoteArgs { key, value }): Parameters<PutNoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        check_key(&key)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(ErrorData::invalid_params(
                format!("value must be at most {MAX_VALUE_LEN} bytes"),
                None,
            ));
        }
        self.run("put_note", |s| async move {
            let conn = s.db.acquire().await?;
            s.db.with_timeout(Duration::ZERO, async {
                conn.execute(
                    "INSERT INTO notes (key, value, updated_at) VALUES ($1, $2, now())
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                    &[&key, &value],
                )
                .await
            })
            .await?;
            Ok(json!({"key": key, "stored": true}))
        })
        .await
    }

    #[tool(description = "Read a note by key.")]
    async fn get_note(
        &self,
        Parameters(GetNoteArgs { key }): Parameters<GetNoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        check_key(&key)?;
        self.run("get_note", |s| async move {
            let conn = s.db.acquire().await?;
            let row =
                s.db.with_timeout(Duration::ZERO, async {
                    conn.query_opt("SELECT value FROM notes WHERE key = $1", &[&key])
                        .await
                })
                .await?;
            Ok(match row {
                Some(r) => {
                    let value: String = r.try_get(0).map_err(|e| DbError::Query {
                        detail: e.to_string(),
                    })?;
                    json!({"key": key, "found": true, "value": value})
                }
                None => json!({"key": key, "found": false}),
            })
        })
        .await
    }

    #[tool(description = "Count all notes.")]
    async fn count_notes(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("count_notes", |s| async move {
            let conn = s.db.acquire().await?;
            let row =
                s.db.with_timeout(Duration::ZERO, async {
                    conn.query_one("SELECT count(*) FROM notes", &[]).await
                })
                .await?;
            let n: i64 = row.try_get(0).map_err(|e| DbError::Query {
                detail: e.to_string(),
            })?;
            Ok(json!({"count": n}))
        })
        .await
    }

    #[tool(
        description = "Hold a pooled connection for `ms` milliseconds (pg_sleep); for pool exhaustion tests."
    )]
    async fn slow_query(
        &self,
        Parameters(SlowQueryArgs { ms }): Parameters<SlowQueryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if ms > MAX_SLOW_QUERY_MS {
            return Err(ErrorData::invalid_params(
                format!("ms must be at most {MAX_SLOW_QUERY_MS}"),
                None,
            ));
        }
        self.run("slow_query", |s| async move {
            let conn = s.db.acquire().await?;
            let secs = ms as f64 / 1000.0;
            s.db.with_timeout(Duration::from_millis(ms), async {
                conn.execute("SELECT pg_sleep($1)", &[&secs]).await
            })
            .await?;
            Ok(json!({"slept_ms": ms}))
        })
        .await
    }
}

/// The `serverInfo` of `initialize` and `server/discover`: this crate, not
/// the SDK (rmcp's default names itself).
pub fn server_info() -> Implementation {
    Implementation::new("mcp-workload", env!("CARGO_PKG_VERSION"))
}

impl Workload {
    /// A request of an era this server does not answer (`MCP_ERAS`), e.g. a
    /// legacy `tools/list` without `_meta` to a 2026-only server.
    fn check_era(&self, context: &RequestContext<RoleServer>) -> Result<(), ErrorData> {
        let eras = self.shared.eras;
        let version = context.protocol_version();
        if eras.accepts(version.as_ref()) {
            return Ok(());
        }
        let asked = version.unwrap_or(ProtocolVersion::V_2025_03_26);
        Err(ErrorData::unsupported_protocol_version(
            asked,
            eras.supported_versions(),
        ))
    }
}

impl ServerHandler for Workload {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(server_info())
            .with_instructions(
                "Notes stored in PostgreSQL. put_note/get_note/count_notes; slow_query holds a connection.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(self.shared.eras.supported_versions())
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if !self.shared.eras.has_initialize() {
            return Err(ErrorData::method_not_found::<
                rmcp::model::InitializeResultMethod,
            >());
        }
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        if !self.shared.eras.has_initialize() {
            return Err(ErrorData::method_not_found::<rmcp::model::PingRequestMethod>());
        }
        Ok(())
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        if !self.shared.eras.has_discover() {
            return Err(ErrorData::method_not_found::<
                rmcp::model::DiscoverRequestMethod,
            >());
        }
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.check_era(&context)?;
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.check_era(&context)?;
        // 2026-07-28 lists carry cache hints; the tool set never changes.
        let hints = context
            .protocol_version()
            .is_some_and(|v| !v.has_initialize());
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools: self.tool_router.list_all(),
            meta: None,
            next_cursor: None,
            ttl_ms: hints.then_some(0),
            cache_scope: hints.then_some(CacheScope::Public),
        })
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tool_router.get(name).cloned()
    }
}
