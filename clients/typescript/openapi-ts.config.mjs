// @hey-api/openapi-ts, as scripts/clients.sh runs it: the document and the
// output folder come from the environment. Answers are validated at run
// time by the zod schemas generated from the same document (requests are
// not, so that the flow can send what the server must refuse).
export default {
  input: process.env.LOYALTY_OPENAPI,
  output: process.env.LOYALTY_TS_OUT,
  plugins: [
    '@hey-api/client-fetch',
    '@hey-api/typescript',
    'zod',
    { name: '@hey-api/sdk', validator: { request: false, response: 'zod' } },
  ],
};
