// A real OpenID provider for the OAuth tests: oidc-provider (OpenID certified), issuing JWT access tokens
// (RFC 9068) bound to a resource (RFC 8707) with the client credentials grant. Started by
// devtools/oidc_provider.py on a loopback port; everything comes from the environment:
//   ISSUER      the issuer identifier (http://127.0.0.1:<PORT>, or https://<name>:<PORT> with TLS_CERT)
//   HOST, PORT  where it listens (HOST: 127.0.0.1 unless given; a container gives 0.0.0.0)
//   TLS_CERT, TLS_KEY  optional: serve HTTPS with this certificate (PEM files), as an issuer must off loopback
//   JWKS_FILE   its signing keys, private (the test writes them; a restart with other keys is a rotation)
//   CLIENTS     JSON list of clients: {client_id, client_secret, scope}
//   RESOURCES   the resource indicators it issues tokens for, comma-separated (others: invalid_target)
//   TOKEN_TTL   access token lifetime in seconds
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import Provider, { errors } from 'oidc-provider';

const { ISSUER, HOST, PORT, JWKS_FILE, CLIENTS, RESOURCES, TOKEN_TTL, TLS_CERT, TLS_KEY } = process.env;
const resources = new Set(RESOURCES.split(','));
const scopes = ['pg:read', 'pg:explain', 'pg:schema:sales', 'other:scope'];

const provider = new Provider(ISSUER, {
  jwks: JSON.parse(readFileSync(JWKS_FILE, 'utf8')),
  clients: JSON.parse(CLIENTS).map((client) => ({
    ...client,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  scopes: ['openid', ...scopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resourceIndicator) {
        if (!resources.has(resourceIndicator)) {
          throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        }
        return {
          scope: scopes.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: Number(TOKEN_TTL || 300),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

const listening = () => process.stdout.write(`oidc-provider listening on ${ISSUER}\n`);
if (TLS_CERT) {
  const tls = { cert: readFileSync(TLS_CERT), key: readFileSync(TLS_KEY) };
  createServer(tls, provider.callback()).listen(Number(PORT), HOST || '127.0.0.1', listening);
} else {
  provider.listen(Number(PORT), HOST || '127.0.0.1', listening);
}
// a container's process 1 gets no default handler: stop at once when asked
process.on('SIGTERM', () => process.exit(0));
