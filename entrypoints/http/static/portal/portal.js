/* Tessera self-service portal: the WebAuthn calls of the "add a key" and "verify" pages.
 * Served from the app itself (CSP script-src 'self'); no inline script, no dependencies. */
"use strict";

(() => {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  // --- base64url, for browsers without the Level 3 JSON helpers ---------------------------
  const b64u = {
    decode(text) {
      const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
      const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
      return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
    },
    encode(buffer) {
      let binary = "";
      for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
      return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  const descriptors = (list) => (list || []).map((c) => ({ ...c, id: b64u.decode(c.id) }));

  function creationOptions(json) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: b64u.decode(json.challenge),
      user: { ...json.user, id: b64u.decode(json.user.id) },
      excludeCredentials: descriptors(json.excludeCredentials),
    };
  }

  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: b64u.decode(json.challenge),
      allowCredentials: descriptors(json.allowCredentials),
    };
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const r = credential.response;
    const response = { clientDataJSON: b64u.encode(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = b64u.encode(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = b64u.encode(r.authenticatorData);
      response.signature = b64u.encode(r.signature);
      response.userHandle = r.userHandle ? b64u.encode(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: b64u.encode(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response,
    };
  }

  // --- talking to the portal ----------------------------------------------------------------
  class Problem extends Error {
    constructor(problem, status) {
      super(problem.detail || `The request failed (HTTP ${status}).`);
      this.problem = problem;
    }
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Problem(data, response.status);
    return data;
  }

  /** A person-readable sentence for what the browser or the server refused. */
  function explain(error) {
    if (error instanceof Problem) return error.message;
    switch (error && error.name) {
      case "NotAllowedError":
        return "The request was cancelled, timed out, or the authenticator did not confirm it. Try again.";
      case "InvalidStateError":
        return "This authenticator is already registered for your account.";
      case "NotSupportedError":
        return "This authenticator cannot do what is needed here. Try another one.";
      case "SecurityError":
        return "The browser refused: this page's address does not match the service.";
      case "AbortError":
        return "The request was cancelled.";
      default:
        return "Something went wrong. Try again.";
    }
  }

  /** The status line, error box and button of one ceremony on a page. */
  function ceremony(root) {
    const button = root.querySelector("[data-start]");
    const status = root.querySelector("[data-status]");
    const alert = root.querySelector("[data-error]");
    const verifyAgain = root.querySelector("[data-verify-again]");
    return {
      busy(message) {
        button.disabled = true;
        alert.hidden = true;
        if (verifyAgain) verifyAgain.hidden = true;
        status.textContent = message;
      },
      fail(error) {
        button.disabled = false;
        status.textContent = "";
        alert.textContent = explain(error);
        alert.hidden = false;
        alert.focus();
        if (verifyAgain && error instanceof Problem && error.problem.verification_required) {
          verifyAgain.hidden = false;
        }
      },
    };
  }

  function unsupported(root) {
    if (window.PublicKeyCredential && navigator.credentials) return false;
    const alert = root.querySelector("[data-error]");
    alert.textContent =
      "This browser cannot use security keys or passkeys. Use an up-to-date browser.";
    alert.hidden = false;
    root.querySelector("[data-start]").disabled = true;
    return true;
  }

  // --- add a security key, a passkey or this device ----------------------------------------
  const keyForm = document.getElementById("key-form");
  if (keyForm && !unsupported(keyForm)) {
    const ui = ceremony(keyForm);
    keyForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      ui.busy("Follow your browser's instructions to register the authenticator…");
      try {
        const started = await post("/portal/api/keys", {
          kind: keyForm.dataset.kind,
          name: keyForm.elements.name.value,
        });
        const credential = await navigator.credentials.create({
          publicKey: creationOptions(started.options),
        });
        ui.busy("Checking the authenticator…");
        await post(`/portal/api/keys/${started.enrolment_id}/confirm`, {
          credential: credentialJSON(credential),
        });
        window.location.assign("/portal?notice=added");
      } catch (error) {
        ui.fail(error);
      }
    });
  }

  // --- verify with an existing security key or passkey -------------------------------------
  const verifyKey = document.getElementById("verify-key");
  if (verifyKey && !unsupported(verifyKey)) {
    const ui = ceremony(verifyKey);
    verifyKey.querySelector("[data-start]").addEventListener("click", async () => {
      ui.busy("Use your security key or passkey when your browser asks…");
      try {
        const started = await post("/portal/api/verify/options", {});
        const credential = await navigator.credentials.get({
          publicKey: requestOptions(started.options),
        });
        ui.busy("Checking…");
        await post("/portal/api/verify", {
          authentication_id: started.authentication_id,
          credential: credentialJSON(credential),
        });
        window.location.assign(verifyKey.dataset.next || "/portal");
      } catch (error) {
        ui.fail(error);
      }
    });
  }
})();
