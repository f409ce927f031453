use axum::http::StatusCode;
use axum::Json;
use ward_api::{Account, CreateAccount, ErrorBody, Page, PageQuery, SetPassword, SetRole};
use ward_core::time::rfc3339;
use ward_core::{ErrorCode, Name, Permission, Target};
use ward_store::{AccountRow, NewAccount};

use super::{opt_time, page, page_request};
use crate::auth::password;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::now_ms;

pub(super) fn view(a: AccountRow) -> Account {
    let now = now_ms();
    Account {
        id: a.id,
        name: a.name,
        role: a.role,
        created_at: rfc3339(a.created_at),
        created_by: a.created_by,
        last_login_at: opt_time(a.last_login_at),
        failed_logins: u32::try_from(a.failed_logins).unwrap_or(u32::MAX),
        locked_until: opt_time(a.locked_until.filter(|t| *t > now)),
        mfa_enabled: a.mfa_enabled,
    }
}

async fn find(ctx: &Ctx, name: &str) -> ApiResult<AccountRow> {
    ctx.state
        .store
        .account_by_name(ctx.tenant_id(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("account {name}")))
}

/// The tenant's administrator accounts.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Account>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<Page<Account>>> {
    ctx.target("accounts");
    ctx.authorize(Permission::AccountsRead, ctx.tenant_target())?;
    let p = ctx
        .state
        .store
        .list_accounts(ctx.tenant_id(), &page_request(&q))
        .await?;
    Ok(Json(page(p, view)))
}

/// Create a sub-account with a role no more powerful than the caller's.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = CreateAccount, security(("bearer" = [])),
    responses((status = 201, body = Account), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(ctx: Ctx, ApiJson(req): ApiJson<CreateAccount>) -> ApiResult<(StatusCode, Json<Account>)> {
    ctx.target(format!("account:{}", req.name));
    ctx.detail(format!("role {}", req.role));
    ctx.authorize(
        Permission::AccountsManage,
        Target::Grant {
            tenant_id: ctx.tenant_id(),
            role: req.role,
        },
    )?;
    let name = Name::parse(&req.name)?;
    password::check_policy(&req.password)?;
    let hash = password::hash(req.password).await?;
    let new = NewAccount {
        name: name.as_str(),
        role: req.role,
        password_hash: &hash,
        created_by: Some(&ctx.principal.account.name),
    };
    let a = ctx.state.store.create_account(ctx.tenant_id(), new, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(view(a))))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/accounts/{name}", tag = "accounts", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Account), (status = 404, body = ErrorBody)))]
pub async fn show(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Account>> {
    ctx.target(format!("account:{name}"));
    ctx.authorize(Permission::AccountsRead, ctx.tenant_target())?;
    let a = find(&ctx, &name).await?;
    ctx.authorize(
        Permission::AccountsRead,
        Target::Account {
            tenant_id: ctx.tenant_id(),
            account_id: &a.id,
            role: a.role,
        },
    )?;
    Ok(Json(view(a)))
}

/// Delete a sub-account; its sessions and API keys end with it.
#[utoipa::path(delete, path = "/api/v1/accounts/{name}", tag = "accounts", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("account:{name}"));
    ctx.authorize(Permission::AccountsManage, ctx.tenant_target())?;
    let a = find(&ctx, &name).await?;
    ctx.authorize(
        Permission::AccountsManage,
        Target::Account {
            tenant_id: ctx.tenant_id(),
            account_id: &a.id,
            role: a.role,
        },
    )?;
    ctx.state.store.delete_account(ctx.tenant_id(), &a.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a sub-account's role.
#[utoipa::path(put, path = "/api/v1/accounts/{name}/role", tag = "accounts", params(("name" = String, Path)), request_body = SetRole,
    security(("bearer" = [])), responses((status = 200, body = Account), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_role(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<SetRole>,
) -> ApiResult<Json<Account>> {
    ctx.target(format!("account:{name}"));
    ctx.authorize(Permission::AccountsManage, ctx.tenant_target())?;
    let a = find(&ctx, &name).await?;
    ctx.detail(format!("role {} -> {}", a.role, req.role));
    ctx.authorize(
        Permission::AccountsManage,
        Target::Account {
            tenant_id: ctx.tenant_id(),
            account_id: &a.id,
            role: a.role,
        },
    )?;
    ctx.authorize(
        Permission::AccountsManage,
        Target::Grant {
            tenant_id: ctx.tenant_id(),
            role: req.role,
        },
    )?;
    ctx.state
        .store
        .set_account_role(ctx.tenant_id(), &a.id, req.role)
        .await?;
    Ok(Json(view(AccountRow { role: req.role, ..a })))
}

/// Change a password: one's own (with the current one), or a sub-account's.
/// The account's sessions end.
#[utoipa::path(put, path = "/api/v1/accounts/{name}/password", tag = "accounts", params(("name" = String, Path)), request_body = SetPassword,
    security(("bearer" = [])), responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_password(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<SetPassword>,
) -> ApiResult<StatusCode> {
    ctx.target(format!("account:{name}"));
    let own = name == ctx.principal.account.name;
    if own {
        ctx.authorize(Permission::AccountsRead, Target::OwnCredentials)?;
        let current = req.current_password.clone().unwrap_or_default();
        if !password::verify(current, Some(ctx.principal.account.password_hash.clone())).await {
            // Guessing through a stolen session counts like guessing at sign-in.
            crate::auth::login::count_account_failure(
                &ctx.state,
                &ctx.principal.account,
                "wrong password",
                ctx.audit(),
                now_ms(),
            )
            .await?;
            ctx.detail("current password wrong");
            return Err(ApiError::new(ErrorCode::InvalidField, "the current password is wrong"));
        }
    } else {
        ctx.authorize(Permission::AccountsManage, ctx.tenant_target())?;
    }
    let a = find(&ctx, &name).await?;
    if !own {
        ctx.authorize(
            Permission::AccountsManage,
            Target::Account {
                tenant_id: ctx.tenant_id(),
                account_id: &a.id,
                role: a.role,
            },
        )?;
    }
    password::check_policy(&req.new_password)?;
    let hash = password::hash(req.new_password).await?;
    ctx.state.store.set_password_hash(ctx.tenant_id(), &a.id, &hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift an account's sign-in lock-out.
#[utoipa::path(post, path = "/api/v1/accounts/{name}/unlock", tag = "accounts", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = Account), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlock(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Account>> {
    ctx.target(format!("account:{name}"));
    // Unlocking grants nothing, so any account manager may unlock any account, the owner's included.
    ctx.authorize(Permission::AccountsManage, ctx.tenant_target())?;
    let a = find(&ctx, &name).await?;
    ctx.state.store.unlock_account(ctx.tenant_id(), &a.id).await?;
    Ok(Json(view(AccountRow {
        failed_logins: 0,
        locked_until: None,
        ..a
    })))
}
