// A real OpenID Provider for the gateway's authentication tests (npm package `oidc-provider`).
//
// Started by the tests on loopback: `node provider.mjs` with
//   PORT       port to listen on (0: any free port)
//   KEYS_DIR   directory of signing keys; each key NAME is NAME.jwk.json (private JWK) and
//              NAME.pem (PKCS#8, so the tests can sign tokens with it) and NAME.pub.pem; made
//              if missing
//   KEYS       comma-separated key names, the first one signs (rotation = restart with a new
//              first key)
//   UNPUBLISHED comma-separated key names made in KEYS_DIR but not published (rogue keys)
//   AUDIENCE   the resource indicator (token audience) of the gateway
// Prints one JSON line on stdout when ready: {"issuer": "...", "port": N}.
// One client per role (client id = role name, secret "<role>-secret") with that scope only,
// and a client "nobody" with no role.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import crypto from "node:crypto";
import Provider from "oidc-provider";

const roles = ["integrator", "auditor", "vendor", "admin"];
const keysDir = process.env.KEYS_DIR;
const keyNames = (process.env.KEYS || "key-1").split(",");
const audience = process.env.AUDIENCE || "urn:sosku:gateway";

function signingKey(name) {
  const jwkFile = path.join(keysDir, `${name}.jwk.json`);
  if (!fs.existsSync(jwkFile)) {
    const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: "jwk" }), kid: name, alg: "RS256", use: "sig" };
    fs.writeFileSync(path.join(keysDir, `${name}.pem`), privateKey.export({ format: "pem", type: "pkcs8" }));
    const publicKey = crypto.createPublicKey(privateKey);
    fs.writeFileSync(path.join(keysDir, `${name}.pub.pem`), publicKey.export({ format: "pem", type: "spki" }));
    fs.writeFileSync(jwkFile, JSON.stringify(jwk));
  }
  return JSON.parse(fs.readFileSync(jwkFile, "utf8"));
}

for (const name of (process.env.UNPUBLISHED || "").split(",").filter(Boolean)) signingKey(name);

const server = http.createServer();
server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  const port = server.address().port;
  const issuer = `http://127.0.0.1:${port}`;
  const clients = [...roles, "nobody"].map((role) => ({
    client_id: role,
    client_secret: `${role}-secret`,
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: "client_secret_basic",
    ...(role === "nobody" ? {} : { scope: role }),
  }));
  const provider = new Provider(issuer, {
    clients,
    scopes: ["openid", ...roles],
    jwks: { keys: keyNames.map(signingKey) },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: roles.join(" "),
          audience: resource,
          accessTokenFormat: "jwt",
          accessTokenTTL: 600,
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
  });
  server.on("request", provider.callback());
  process.stdout.write(JSON.stringify({ issuer, port }) + "\n");
});

process.on("SIGTERM", () => process.exit(0));
