//! End users and groups of the tenant.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::Json;
use ward_api::{
    CreateGroup, CreateUser, ErrorBody, Group, GroupMember, Page, PageQuery, SetUserPassword, UpdateGroup, UpdateUser,
    User,
};
use ward_core::attrs;
use ward_core::time::rfc3339;
use ward_core::{Name, Permission};
use ward_store::{GroupRow, UserRow};

use super::{opt_time, page, page_request};
use crate::auth::password;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::now_ms;

async fn find_user(ctx: &Ctx, name: &str) -> ApiResult<UserRow> {
    ctx.state
        .store
        .user_by_name(ctx.tenant_id(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {name}")))
}

async fn find_group(ctx: &Ctx, name: &str) -> ApiResult<GroupRow> {
    ctx.state
        .store
        .group_by_name(ctx.tenant_id(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {name}")))
}

/// Group names by user id, and member names by group id: listed members
/// and the members of dynamic groups, as the policy sees them.
async fn memberships(ctx: &Ctx) -> ApiResult<(HashMap<String, Vec<String>>, HashMap<String, Vec<String>>)> {
    let store = &ctx.state.store;
    let all_groups = store.all_groups(ctx.tenant_id()).await?;
    let all_users = store.all_users(ctx.tenant_id()).await?;
    let pairs = crate::policy::memberships(&all_groups, &all_users, store.all_memberships(ctx.tenant_id()).await?);
    let groups: HashMap<_, _> = all_groups.into_iter().map(|g| (g.id, g.name)).collect();
    let users: HashMap<_, _> = all_users.into_iter().map(|u| (u.id, u.name)).collect();
    let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
    let mut by_group: HashMap<String, Vec<String>> = HashMap::new();
    for (group_id, user_id) in pairs {
        if let (Some(g), Some(u)) = (groups.get(&group_id), users.get(&user_id)) {
            by_user.entry(user_id.clone()).or_default().push(g.clone());
            by_group.entry(group_id).or_default().push(u.clone());
        }
    }
    Ok((by_user, by_group))
}

fn user_view(u: UserRow, groups: &HashMap<String, Vec<String>>) -> User {
    let mut g = groups.get(&u.id).cloned().unwrap_or_default();
    g.sort();
    let now = now_ms();
    User {
        groups: g,
        attributes: u.attributes,
        source: u.source_id,
        id: u.id,
        name: u.name,
        disabled: u.disabled,
        created_at: rfc3339(u.created_at),
        has_password: u.has_password,
        locked_until: opt_time(u.locked_until.filter(|t| *t > now)),
        mfa_enabled: u.mfa_enabled,
    }
}

fn group_view(g: GroupRow, members: &HashMap<String, Vec<String>>) -> Group {
    let mut m = members.get(&g.id).cloned().unwrap_or_default();
    m.sort();
    Group {
        members: m,
        conditions: g.conditions,
        id: g.id,
        name: g.name,
        created_at: rfc3339(g.created_at),
    }
}

/// The tenant's end users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<User>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<Page<User>>> {
    ctx.target("users");
    ctx.authorize(Permission::UsersRead, ctx.tenant_target())?;
    let p = ctx.state.store.list_users(ctx.tenant_id(), &page_request(&q)).await?;
    let (by_user, _) = memberships(&ctx).await?;
    Ok(Json(page(p, |u| user_view(u, &by_user))))
}

/// Create an end user, optionally in existing groups.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(ctx: Ctx, ApiJson(req): ApiJson<CreateUser>) -> ApiResult<(StatusCode, Json<User>)> {
    ctx.target(format!("user:{}", req.name));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let name = Name::parse(&req.name)?;
    let mut groups = Vec::new();
    for g in &req.groups {
        groups.push(find_group(&ctx, g).await?);
    }
    let store = &ctx.state.store;
    let user = store.create_user(ctx.tenant_id(), name.as_str(), now_ms()).await?;
    for g in &groups {
        store.add_member(ctx.tenant_id(), &g.id, &user.id).await?;
    }
    let by_user = HashMap::from([(user.id.clone(), groups.into_iter().map(|g| g.name).collect())]);
    Ok((StatusCode::CREATED, Json(user_view(user, &by_user))))
}

/// One end user.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn show(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<User>> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersRead, ctx.tenant_target())?;
    let u = find_user(&ctx, &name).await?;
    let (by_user, _) = memberships(&ctx).await?;
    Ok(Json(user_view(u, &by_user)))
}

/// Enable or disable an end user (a disabled user's connections are
/// refused), or replace its attributes (dynamic groups follow them).
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), request_body = UpdateUser,
    security(("bearer" = [])), responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn update(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let mut u = find_user(&ctx, &name).await?;
    if req.disabled.is_none() && req.attributes.is_none() {
        return Err(ApiError::invalid("nothing to change: give disabled or attributes"));
    }
    let mut what = Vec::new();
    if let Some(a) = &req.attributes {
        attrs::check_attributes(a).map_err(|e| ApiError::invalid(e.0))?;
    }
    if let Some(disabled) = req.disabled {
        what.push(if disabled { "disabled" } else { "enabled" });
        ctx.state
            .store
            .set_user_disabled(ctx.tenant_id(), &u.id, disabled)
            .await?;
        if disabled {
            // Signed out of the portal too (not only refused there while disabled).
            ctx.state.store.delete_user_sessions(ctx.tenant_id(), &u.id).await?;
            // And signed out of every device: enabling the user again does not
            // reopen them; each device's user runs `ward agent login`.
            ctx.state.store.end_user_device_sessions(ctx.tenant_id(), &u.id).await?;
        }
        u.disabled = disabled;
    }
    if let Some(a) = req.attributes {
        what.push("attributes set");
        ctx.state.store.set_user_attributes(ctx.tenant_id(), &u.id, &a).await?;
        u.attributes = a;
    }
    ctx.detail(what.join(", "));
    let (by_user, _) = memberships(&ctx).await?;
    Ok(Json(user_view(u, &by_user)))
}

/// Delete an end user.
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let u = find_user(&ctx, &name).await?;
    ctx.state.store.delete_user(ctx.tenant_id(), &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set an end user's password, with which it signs in to the user portal.
/// Its lock-out, if any, stays (lift it with `unlock`).
#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "users", params(("name" = String, Path)),
    request_body = SetUserPassword, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_password(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<SetUserPassword>,
) -> ApiResult<StatusCode> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let u = find_user(&ctx, &name).await?;
    password::check_policy(&req.password)?;
    let hash = password::hash(req.password).await?;
    ctx.state
        .store
        .set_user_password_hash(ctx.tenant_id(), &u.id, Some(&hash))
        .await?;
    // A new password ends the portal sessions signed in with the old one.
    ctx.state.store.delete_user_sessions(ctx.tenant_id(), &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove an end user's password: it can no longer sign in to the user
/// portal (its devices keep working).
#[utoipa::path(delete, path = "/api/v1/users/{name}/password", tag = "users", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn clear_password(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let u = find_user(&ctx, &name).await?;
    ctx.state
        .store
        .set_user_password_hash(ctx.tenant_id(), &u.id, None)
        .await?;
    ctx.state.store.delete_user_sessions(ctx.tenant_id(), &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift an end user's sign-in lock-out and forget its failed sign-ins.
#[utoipa::path(post, path = "/api/v1/users/{name}/unlock", tag = "users", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlock(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<User>> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let u = find_user(&ctx, &name).await?;
    ctx.state.store.unlock_user(ctx.tenant_id(), &u.id).await?;
    let (by_user, _) = memberships(&ctx).await?;
    Ok(Json(user_view(
        UserRow {
            failed_logins: 0,
            locked_until: None,
            ..u
        },
        &by_user,
    )))
}

/// Turn off an end user's two-step sign-in to the portal (for a lost
/// phone): its TOTP secret and recovery codes are deleted and its portal
/// sessions end; it signs in with its password alone and can set it up again.
#[utoipa::path(post, path = "/api/v1/users/{name}/mfa/reset", tag = "users", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mfa_reset(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<User>> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let u = find_user(&ctx, &name).await?;
    let had = ctx
        .state
        .store
        .remove_totp_of(ward_store::MfaOwner::User, ctx.tenant_id(), &u.id, true)
        .await?;
    ctx.detail(if had {
        "two-step sign-in removed; portal sessions ended"
    } else {
        "the user had no two-step sign-in"
    });
    let (by_user, _) = memberships(&ctx).await?;
    Ok(Json(user_view(
        UserRow {
            mfa_enabled: false,
            ..u
        },
        &by_user,
    )))
}

/// The tenant's groups with their members.
#[utoipa::path(get, path = "/api/v1/groups", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Page<Group>), (status = 403, body = ErrorBody)))]
pub async fn list_groups(ctx: Ctx) -> ApiResult<Json<Page<Group>>> {
    ctx.target("groups");
    ctx.authorize(Permission::UsersRead, ctx.tenant_target())?;
    let groups = ctx.state.store.all_groups(ctx.tenant_id()).await?;
    let (_, by_group) = memberships(&ctx).await?;
    Ok(Json(Page {
        items: groups.into_iter().map(|g| group_view(g, &by_group)).collect(),
        next_cursor: None,
    }))
}

/// Create a group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "users", request_body = CreateGroup, security(("bearer" = [])),
    responses((status = 201, body = Group), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_group(ctx: Ctx, ApiJson(req): ApiJson<CreateGroup>) -> ApiResult<(StatusCode, Json<Group>)> {
    ctx.target(format!("group:{}", req.name));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let name = Name::parse(&req.name)?;
    let conditions = conditions(&req.conditions)?;
    let store = &ctx.state.store;
    let mut g = store.create_group(ctx.tenant_id(), name.as_str(), now_ms()).await?;
    if !conditions.is_empty() {
        ctx.detail(format!("conditions {}", conditions.join(" AND ")));
        store.set_group_conditions(ctx.tenant_id(), &g.id, &conditions).await?;
        g.conditions = conditions;
    }
    let (_, by_group) = memberships(&ctx).await?;
    Ok((StatusCode::CREATED, Json(group_view(g, &by_group))))
}

/// Conditions checked and in their canonical text.
fn conditions(texts: &[String]) -> ApiResult<Vec<String>> {
    Ok(attrs::parse_conditions(texts)
        .map_err(|e| ApiError::invalid(e.0))?
        .iter()
        .map(ToString::to_string)
        .collect())
}

/// Change a group: its conditions (an empty list makes it static again).
#[utoipa::path(patch, path = "/api/v1/groups/{name}", tag = "users", params(("name" = String, Path)), request_body = UpdateGroup,
    security(("bearer" = [])), responses((status = 200, body = Group), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_group(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateGroup>,
) -> ApiResult<Json<Group>> {
    ctx.target(format!("group:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let mut g = find_group(&ctx, &name).await?;
    if let Some(c) = req.conditions {
        let c = conditions(&c)?;
        ctx.detail(if c.is_empty() {
            "static".to_owned()
        } else {
            format!("conditions {}", c.join(" AND "))
        });
        ctx.state.store.set_group_conditions(ctx.tenant_id(), &g.id, &c).await?;
        g.conditions = c;
    }
    let (_, by_group) = memberships(&ctx).await?;
    Ok(Json(group_view(g, &by_group)))
}

/// Delete a group (its users stay).
#[utoipa::path(delete, path = "/api/v1/groups/{name}", tag = "users", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_group(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("group:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let g = find_group(&ctx, &name).await?;
    ctx.state.store.delete_group(ctx.tenant_id(), &g.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user to a group.
#[utoipa::path(post, path = "/api/v1/groups/{name}/members", tag = "users", params(("name" = String, Path)), request_body = GroupMember,
    security(("bearer" = [])), responses((status = 200, body = Group), (status = 404, body = ErrorBody)))]
pub async fn add_member(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<GroupMember>,
) -> ApiResult<Json<Group>> {
    ctx.target(format!("group:{name}"));
    ctx.detail(format!("add user {}", req.user));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let g = find_group(&ctx, &name).await?;
    let u = find_user(&ctx, &req.user).await?;
    ctx.state.store.add_member(ctx.tenant_id(), &g.id, &u.id).await?;
    let (_, by_group) = memberships(&ctx).await?;
    Ok(Json(group_view(g, &by_group)))
}

/// Remove a user from a group.
#[utoipa::path(delete, path = "/api/v1/groups/{name}/members/{user}", tag = "users",
    params(("name" = String, Path), ("user" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_member(ctx: Ctx, ApiPath((name, user)): ApiPath<(String, String)>) -> ApiResult<StatusCode> {
    ctx.target(format!("group:{name}"));
    ctx.detail(format!("remove user {user}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let g = find_group(&ctx, &name).await?;
    let u = find_user(&ctx, &user).await?;
    if ctx.state.store.remove_member(ctx.tenant_id(), &g.id, &u.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("user {user} in group {name}")))
    }
}
