// The demo application's sign-in: options from the server, navigator.credentials.get, verify.
"use strict";
(function () {
  const root = document.querySelector("[data-demo-login]");
  if (!root) return;
  const form = root.querySelector("[data-demo-form]");
  const status = root.querySelector("[data-demo-status]");
  const claims = root.querySelector("[data-demo-claims]");

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Tessera-Demo": "1" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail || "the request was refused");
    return answer;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    claims.hidden = true;
    status.textContent = "Touch your security key or confirm on this device…";
    try {
      const userId = form.elements.user_id.value.trim();
      const started = await post("/demo/login", { user_id: userId });
      const credential = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(started.options),
      });
      const result = await post("/demo/login/finish", {
        authentication_id: started.authentication_id,
        credential: credential.toJSON(),
      });
      if (result.status !== "satisfied") {
        status.textContent = "Verified, but this login needs another factor.";
        return;
      }
      status.textContent = "Signed in as " + result.claims.sub + ". The token's claims:";
      claims.textContent = JSON.stringify(result.claims, null, 2);
      claims.hidden = false;
    } catch (error) {
      status.textContent = "Not signed in: " + (error && error.message ? error.message : error);
    }
  });
})();
