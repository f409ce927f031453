//! Each tenant's certificate authority, kept in the store with its key sealed
//! under the master key (the tenant id is the sealing context, so a sealed key
//! cannot be moved to another tenant). The `system` tenant's CA signs gateways.

use ward_pki::CertificateAuthority;
use ward_store::TenantCaRow;

use crate::error::{ApiError, ApiResult};
use crate::state::{now_ms, AppState};

/// The tenant's CA, created on first use.
pub async fn get_or_create(state: &AppState, tenant_id: &str, tenant_name: &str) -> ApiResult<CertificateAuthority> {
    let store = &state.store;
    let row = match store.tenant_ca(tenant_id).await? {
        Some(row) => row,
        None => {
            let ca = CertificateAuthority::generate(&format!("Ward tenant {tenant_name}")).map_err(internal)?;
            let (cert_pem, sealed_key) = ca
                .to_sealed(&state.master_key, tenant_id.as_bytes())
                .map_err(internal)?;
            // Another replica may have created one meanwhile: the stored one wins.
            store
                .insert_tenant_ca(tenant_id, &TenantCaRow { cert_pem, sealed_key }, now_ms())
                .await?
        }
    };
    CertificateAuthority::from_sealed(&row.cert_pem, &row.sealed_key, &state.master_key, tenant_id.as_bytes()).map_err(
        |e| {
            tracing::error!(tenant = %tenant_id, error = %e, "cannot open the tenant CA: is this the master key it was sealed with?");
            ApiError::internal()
        },
    )
}

fn internal(e: ward_pki::PkiError) -> ApiError {
    tracing::error!(error = %e, "certificate authority error");
    ApiError::internal()
}
