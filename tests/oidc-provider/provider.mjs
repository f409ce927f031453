// A real OpenID provider for Ward's tests: oidc-provider with its
// development interactions (sign in by account id, then consent), which a
// test drives with plain HTTP requests.
//
//   PORT=9000 WARD_OIDC_FIXTURE='{"client": {...}, "accounts": [...]}' node provider.mjs
//
// WARD_OIDC_FIXTURE (or the file named by WARD_OIDC_FIXTURE_FILE) holds
//   client:   { client_id, client_secret, redirect_uris }
//   accounts: [{ sub, preferred_username, email, groups, ... }]
// Every claim an account has (but sub) is put in the ID token. Prints
// "listening <issuer>" once it accepts connections.

import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 9000);
// A fixture file is read again at every sign-in, so a test can change an
// account's claims between two sign-ins.
const load = () => JSON.parse(process.env.WARD_OIDC_FIXTURE
  ?? readFileSync(process.env.WARD_OIDC_FIXTURE_FILE, 'utf8'));
const fixture = load();
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;

const claimNames = new Set(['sub']);
for (const a of fixture.accounts) {
  for (const k of Object.keys(a)) claimNames.add(k);
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: fixture.client.client_id,
    client_secret: fixture.client.client_secret,
    redirect_uris: fixture.client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: fixture.client.token_endpoint_auth_method ?? 'client_secret_basic',
  }],
  // Every account claim in the ID token, with the openid scope alone.
  claims: { openid: [...claimNames] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = load().accounts.find((a) => a.sub === id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { ...account };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
