// Sign-In with Ethereum: ask the wallet for its address, get the exact message from the server, sign, send back.
(() => {
  const root = document.getElementById("siwe");
  const button = document.getElementById("siwe-start");
  const status = document.getElementById("siwe-status");
  if (!root || !button) return;
  const say = (text) => { status.textContent = text; };

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrf },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || "The server refused the request.");
    return data;
  }

  button.addEventListener("click", async () => {
    if (!window.ethereum) { say("No browser wallet found. Install one, or sign in with email."); return; }
    button.disabled = true;
    try {
      say("Asking your wallet for its address…");
      const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
      const chainId = parseInt(await window.ethereum.request({ method: "eth_chainId" }), 16);
      const { message } = await post(root.dataset.challengeUrl, { address, chain_id: chainId });
      say("Please sign the message in your wallet…");
      const signature = await window.ethereum.request({ method: "personal_sign", params: [message, address] });
      const result = await post(root.dataset.verifyUrl, { message, signature, next: root.dataset.next });
      say("Signed in.");
      window.location.assign(result.redirect || "/");
    } catch (error) {
      say(error.message || "Signing in did not work.");
      button.disabled = false;
    }
  });
})();
